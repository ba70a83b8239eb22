"""dqlite's client wire protocol: the codec (`codec`) shared by nodehost's remote client and
the members' wire server. The README beside this file states nodehost's extensions."""

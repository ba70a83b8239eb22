"""dqlite's client wire protocol: the codec (`codec`) that nodehost's remote client and the
members' wire server share, the client's path to the leader (`channel`) and the members'
server (`server`). The README beside this file states nodehost's extensions."""

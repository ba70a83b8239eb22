"""The admin service a NodeHost serves when NodeHostConfig.admin_address is set.

The `nodehost` operator command (nodehost.tools) talks to it: host information,
membership, leadership, snapshots, stopping replicas and removing their data. It is
served only on a local unix socket its owner alone may use, or over mutual TLS with
the transport's certificates (server.py states the rules); protocol.py is the wire
format, handlers.py what each operation does, values.py what the answers hold.
"""

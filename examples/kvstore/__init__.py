"""A replicated JSON key-value store over HTTP, built on NodeHost (`example-kvstore`).

Modules, from the log up: `commands` (what a write is, and what applying it does),
`snapshot` (the snapshot stream), `memory` and `disk` (the two state machines),
`settings` and `statedir` (configuration and data layout), `service` (keys to shards,
deadlines, membership), `metrics` and `api` (HTTP), `main` (start-up and shutdown),
`bench` (load against a local cluster). The README's example-kvstore section is the user's guide.
"""

"""example-benchmark: the reproducible benchmark (see docs/performance.md).

Modules: `main` (the coordinator and the command), `settings` (its flags), `cluster`
(starting, driving and stopping the worker processes), `worker` (one NodeHost process
with its clients), `statemachines` (one per --sm kind), `histogram` (latency
percentiles), `disk` (the disk's raw sync rate), `report` (text, targets).
"""

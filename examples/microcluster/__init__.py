"""example-microd and example-microctl: a clustered daemon on nodehost.cluster, and its
control command (Canonical Microcluster's microd and microctl, in Python)."""

"""`pivot`: provisioning moves into the cluster it built (CRDs, RBAC, the appliance as a Deployment,
its state as Secrets, ConfigMaps and custom objects), and `unpivot`: back out to an output directory.
See docs/pivot.md."""

"""pod-details: reports its own health and the details of the Kubernetes pod it runs in."""

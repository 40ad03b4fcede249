"""`gitops new-app` and `gitops docs`: a new app copied from the reference app, its Gateway listener, and the files
derived from the repository (catalog entries, TechDocs, chart READMEs)."""

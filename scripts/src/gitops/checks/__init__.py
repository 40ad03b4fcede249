"""`gitops validate` and its checkers: the rules no schema can say, helm lint, each chart's values, kubeconform,
yamllint, and the live server-side dry run. Each returns findings; none prints."""

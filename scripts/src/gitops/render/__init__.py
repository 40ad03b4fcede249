"""From the repository model to the manifests Argo CD would apply: ApplicationSets expanded as Argo CD expands them,
charts rendered with the pinned helm, the documents split and written out."""

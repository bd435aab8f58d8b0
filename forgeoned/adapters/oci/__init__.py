"""OCI registries: the distribution-API client (``registry``), registry credentials
(``credentials``) and one source's sync into plugins.d (``fetch``)."""

"""Analysis on top of the core models: the parent chain (networkx), layer dedupe, documents."""

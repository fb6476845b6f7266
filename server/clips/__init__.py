"""Evidence clips from kiosks: resumable authenticated upload, storage, renditions, and reading them."""

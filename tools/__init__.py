"""Repository tools (static checks of the deploy artefacts); run from the repository root."""

"""KFP v2 components: one typed wrapper per pipeline step."""

"""The Evaluate page: RLM and baselines scored over generated tasks and context sizes."""

"""Developer scripts: the test command and re-recording the Learn examples."""

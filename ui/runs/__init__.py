"""The Runs page (history, actions, importing a trace) and the Compare page (two runs)."""

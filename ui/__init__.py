"""The Streamlit UI: one folder per page family, and the modules they share at this level.

Page families (each imports only the shared modules below, never another family):
explorer/ (the Explorer), runs/ (the Runs and Compare pages, importing traces), run/ (the Run
page), learn/, settings/, evaluate/. Shared: common (the store, reads, formatting), safe
(escaping and safe labels), widgets (badges, links, node buttons, bounded text), jobs (the one
background-job runner), config_inputs (forms from RLMConfig's metadata), model_picker,
context_choice, document_view and graph_component (used by the Explorer, Learn and the Run page).
"""

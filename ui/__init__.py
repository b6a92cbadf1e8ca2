"""Streamlit UI pieces shared by the app pages."""

"""The app's pages, wired by ``streamlit_app.py`` with ``st.navigation``."""

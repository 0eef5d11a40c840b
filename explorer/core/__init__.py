"""The app's streamlit-free core: the view state and its URL codec, and the numbers behind figures."""

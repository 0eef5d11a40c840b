"""The app's streamlit-free core (no streamlit, no plotly: tests/test_layers.py checks).

``state`` (ViewState: one schema per setting, the URL codec and the widget values derived from
it), ``points`` (the link's bounded point codec), ``text`` (plain text for outside strings), and
the numbers behind the figures: ``data`` (Dataset, presets, the particles' noise), ``flows``
(Source, Flow, compute_flow, frame times), ``fields`` (arrow grid, field frames, warp, one
particle's path), ``densities`` (p_t on a grid) and ``quality`` (energy distance, noise floor).
``explorer.playground.cache`` keeps the shared results with ``st.cache_data``.
"""

"""Import before ``explorer`` in a script that uses the app's modules outside a server.

Each ``st.cache_data`` in explorer logs "No runtime found, using MemoryCacheStorageManager" when it
is declared without a server: true, expected, and noise in a benchmark's output. Streamlit's own
loggers ignore the root logger's level, so theirs is set here, after the config (whose parsing
sets the level from it) has been read.
"""

import logging

import streamlit.config
import streamlit.logger

streamlit.config.get_option("logger.level")
streamlit.logger.set_log_level(logging.ERROR)

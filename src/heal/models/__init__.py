"""Models: loading (Hub id | local folder | heal-tiny), the built-in heal-tiny, prompt formatting, run run_folder."""

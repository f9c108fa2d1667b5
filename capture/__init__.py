"""wsreplay's capture side: a mitmproxy addon that writes corpus files, and the importer
for mitmproxy flow dumps. Load the addon with ``mitmdump -s capture/addon.py``.
"""

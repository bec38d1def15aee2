"""From encoder states to text: options, the decode of one window, the long-form loop, the
window path every entry point shares (``pipeline.py``) and the transcript writers."""

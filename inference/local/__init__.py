"""The ``local`` provider: models run inside the gateway's own processes (docs/local-ocr.md).

``open_local(channel, path, body)`` answers like an upstream HTTP response, so the relay
treats a local channel like any provider's; ``ocr`` holds the OCR engine.
"""

from .selectors import demo_mode


def catalogue(request):
    """``demo_mode``: every enabled channel is the bundled upstream simulator (no provider keys)."""
    return {"demo_mode": demo_mode()}

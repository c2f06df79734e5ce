def is_valid_ipv4(address: str):
    """Check whether a string is a dotted IPv4 address."""
    import ipaddress
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True

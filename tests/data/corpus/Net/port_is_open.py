def port_is_open(host: str, port: int):
    """Try a TCP connection to see if a port accepts connections."""
    import socket
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0

"""Generated gRPC modules for the AIGES WrapperService and go-plugin services (see generate.sh)."""

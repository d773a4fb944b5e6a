"""The HTTP face: FastAPI app, envelope, errors, authentication, one router per resource."""

"""`resnets serve`: a trained model behind HTTP (FastAPI on uvicorn), with a web page."""

"""The floor: a bare Flask endpoint, served by the same gunicorn settings as osauth."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "ok"

"""`tuneforge api`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) for a tuned model.

* ``options``   the command's own flags (host, port, key, caps, CORS, served adapters) and the bind check
* ``protocol``  the request bodies (pydantic), as the OpenAI API names their fields
* ``errors``    OpenAI-shaped JSON errors, the auth and body-size guard
* ``backend``   the model: base + adapters served at once (peft's named adapters), prompts, the reward scorer
* ``scheduler`` one worker thread that gathers waiting requests into batched ``generate`` calls and streams tokens
* ``app``       the routes
"""

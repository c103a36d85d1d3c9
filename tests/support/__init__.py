"""What tests share, apart from fixtures (tests/conftest.py): where things are and the profiles
(`profiles`), processes and ports on 127.0.0.1 (`processes`), sample texts (`documents`), store
snapshots (`store_state`), loopback servers and the fakes that speak vLLM / OpenAI JSON where a
real server cannot produce the fault, tiny random-weight Qwen3 builders (`tiny_models`) and
hostile files. Product code never imports from here."""

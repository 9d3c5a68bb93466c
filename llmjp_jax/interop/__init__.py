"""Hugging Face interop: export to / import from `LlamaForCausalLM` folders."""

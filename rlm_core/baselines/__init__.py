"""The strategies an RLM is compared with: plain, RAG, summarize-until-it-fits, Algorithm 2.

Each is a Session subclass, so it writes the same run tree through the same tracer and budget.
"""

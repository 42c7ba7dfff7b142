"""Vltava example 001: the Todo AI Chatbot's event-driven services (seed 001)."""

"""The controllers that look after Services: ``endpoints`` (each Service's Endpoints,
from the pods its selector chooses)."""

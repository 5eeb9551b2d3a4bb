"""The "event64" backend: `event.EventBackend` with a float64 synaptic current and membrane potential."""

from astrosnn.nalsm.backends.event import EventBackend

BACKEND = EventBackend("float64")

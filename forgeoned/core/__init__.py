"""Pure domain logic: no I/O, no third-party runtime imports, time only via an injected Clock."""

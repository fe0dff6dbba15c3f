"""The relay session: how it breaks, what EHLO announced, one connection, the pool reusing it."""

"""The demo model's build tooling (docs/demo.md): settings, build, absent sentences."""

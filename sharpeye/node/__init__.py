"""The composition root: command line, node wiring and embedded services. Imports every stage; nothing imports it."""

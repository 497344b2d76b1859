"""The benchmark client (shipped to hosts as a file) and the parser of its output."""

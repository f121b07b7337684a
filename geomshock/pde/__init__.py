"""PDE engine: exact log-domain Hopf–Cole / heat semigroup, shock times, and
diffrax time-steppers for source-corrected Burgers and viscous Hamilton–Jacobi."""

# --- exact solutions (part 2) ---

# --- diffrax time-steppers (part 3) ---

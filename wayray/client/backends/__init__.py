"""Display backends of wrclient (see wayray/client/backend.py for the contract)."""

"""The paper's tables and figures, regenerated from this project's runs."""

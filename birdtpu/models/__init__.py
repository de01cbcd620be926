"""Model zoo: a registry from config names to builders."""

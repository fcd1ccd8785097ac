-- A token's own renewal settings, overriding its app's and the global ones:
-- JSON {"enabled": bool?, "user_window_secs": int?, "system_user_fraction": float?}.
ALTER TABLE tokens ADD COLUMN renewal_policy TEXT;

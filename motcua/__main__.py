from motcua.cli import main

# Guarded: worker processes started with "spawn" (month close scoring) import this module again under
# another name, and must not run the command a second time.
if __name__ == "__main__":
    main()

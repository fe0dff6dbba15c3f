from app.cli.main import main

# Guarded: importing every module (the production-install test does) must not run a command.
if __name__ == "__main__":
    main()

from cryoal.cli.main import main

main()

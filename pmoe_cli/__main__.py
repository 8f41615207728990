from pmoe_cli.app import main

main()

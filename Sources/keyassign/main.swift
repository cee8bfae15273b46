import ArgumentParser
import KeyAssign

KeyAssignCommand.main()
